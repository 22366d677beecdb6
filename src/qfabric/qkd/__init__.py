"""QKD: analytic key rates, decoy BB84 and BBM92 links, complete post-processing."""
