"""Education services: state changes, one module per part (courses, grading, feedback, calibration, tutor)."""
