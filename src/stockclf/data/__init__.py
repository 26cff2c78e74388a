"""Prices or labelled series in, labelled windows out: loading, labels, chronological
splits with a purge gap, and the prepared store the later stages read."""
