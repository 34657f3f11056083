"""The book's notebook helpers: the teaching path and its interactive callbacks, and the notebook runner."""
