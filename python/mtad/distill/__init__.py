"""python -m mtad.distill: the recipe that distils a draft model from a target (see __main__.py)."""
