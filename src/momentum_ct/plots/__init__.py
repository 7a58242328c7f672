"""Seaborn figures, one function per figure, each ``draw(inputs, output, claim)``; a claim's registry entry
names its figures (``claims.claim.Figure``)."""
