# The suite lives in tests/; this root file only loads plugins, which pytest allows here alone.
pytest_plugins = ("celery.contrib.pytest",)
