"""Benchmarks behind `shelfid bench`: the catalog index and the daemon's frame loop on a video."""
