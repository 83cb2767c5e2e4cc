"""Publishing, training and evaluation (issue 5)."""
