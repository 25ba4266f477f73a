"""The run side of a search: the scheduler, the engines that train trials, trial settlement, capacity,
heartbeat, interrupts, settings and worker processes. Reading a finished study imports none of it."""
