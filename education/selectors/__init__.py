"""Education reads, one module per part (grading, tutor)."""
