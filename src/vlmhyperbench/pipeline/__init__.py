"""Planning a run: file targets, fingerprints, stage images, sample selection, provenance and
what each backend needs (everything the rules ask at parse time)."""
