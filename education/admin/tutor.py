"""Admin for course material and tutor sessions."""
