"""Lightning callbacks for olmo2_lit, one per file; installed as ``olmo2_lit.callbacks``."""
