"""Exercise a recipe: smoke tests of the OpenAI API, aiperf, and GPU predictions."""
