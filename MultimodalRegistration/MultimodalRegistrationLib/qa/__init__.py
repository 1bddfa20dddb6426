"""qa: how good is a registration. Landmark FRE/TRE, overlap, image agreement, Jacobian, inverse
consistency, the stability verdict, pictures and the HTML report."""
