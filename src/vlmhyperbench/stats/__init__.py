"""Statistics shared by the score files' intervals and the report's paired tests."""
