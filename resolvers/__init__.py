"""The domain: per-domain loaders, reads and writes (`do_<verb>_<noun>()`), feed, ranking, job handlers."""
