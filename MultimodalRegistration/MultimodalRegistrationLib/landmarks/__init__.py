"""landmarks: transforms fitted to paired points (translation to thin-plate spline), residuals,
leave-one-out errors, sanity checks, and the point file formats."""
