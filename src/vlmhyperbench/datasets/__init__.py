"""Datasets: the manifest contract, the demo generator and (later) importers."""
