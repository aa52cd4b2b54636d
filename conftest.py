# The suite lives in tests/; this root file loads plugins (pytest allows that here alone)
# and sets what must hold before Django's settings are read.
import atexit
import os
import shutil
import tempfile

pytest_plugins = ("celery.contrib.pytest",)

# One media folder for the whole test session, shared with the live ASGI server that
# tests fork, so files a test stores are the files the server serves.
_MEDIA_ROOT = tempfile.mkdtemp(prefix="bctrl-test-files-")
os.environ["MEDIA_ROOT"] = _MEDIA_ROOT
atexit.register(shutil.rmtree, _MEDIA_ROOT, True)
