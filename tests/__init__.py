"""taogram's test suite: mirrors the packages; real servers come from `tests.harness`."""
