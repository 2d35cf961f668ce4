"""Grouping faces into persons: k-NN graph, clustering methods, assignment, metrics."""
