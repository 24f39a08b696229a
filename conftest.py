# Root conftest: makes pytest put this checkout first on sys.path, so the tests always test
# this tree's sgdq even when another checkout is the one pip installed in editable mode.
