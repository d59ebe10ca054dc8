"""What jobs share at run time: atomic files, logging, just-in-time packages, S3."""
