"""Plain Python references that the engine's ops and methods are tested against."""
