"""Reading a study: the result table, the report and its plots, the winner and confirmation runs as
stored, and speed. Imports nothing of the run side: no module here trains.
"""
