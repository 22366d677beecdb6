"""QKD post-processing, each step usable alone on bit arrays: sift, estimate, reconcile (Cascade), verify,
amplify (Toeplitz by FFT)."""

from qfabric.qkd.postprocess.cascade import VARIANTS, CascadeResult, block_sizes, cascade
from qfabric.qkd.postprocess.steps import (
    ErrorEstimate,
    FrameVerification,
    estimate_qber,
    privacy_amplify,
    sift,
    toeplitz_hash,
    toeplitz_hash_pair,
    toeplitz_matrix,
    verification_tag_bits,
    verify,
    verify_frames,
)

__all__ = [
    "VARIANTS",
    "CascadeResult",
    "ErrorEstimate",
    "FrameVerification",
    "block_sizes",
    "cascade",
    "estimate_qber",
    "privacy_amplify",
    "sift",
    "toeplitz_hash",
    "toeplitz_hash_pair",
    "toeplitz_matrix",
    "verification_tag_bits",
    "verify",
    "verify_frames",
]
