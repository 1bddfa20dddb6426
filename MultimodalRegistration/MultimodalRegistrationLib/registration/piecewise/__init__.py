"""Piecewise registration: each named segment (a bone) rigidly on its own, blended into one field."""
