"""Admin for courses, assignments, essays and grades."""
