"""A trial as files: export folders, the standalone script, config.json, output paths and artifacts."""
