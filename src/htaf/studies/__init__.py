"""Studies that reproduce or extend the paper's analyses; ``htaf study NAME`` runs them.

* ``gradient_flow``: layer-1 gradient norms of a [256, 256, 128] MLP without batch norm for
  HTAF at alpha0·alpha1 = 22 and the scaled sigmoid sigmoid(22x) (the paper's appendix).
"""
