"""GPU kernels tracekit ships (Triton, with a PyTorch fallback); imports only torch, triton and the stdlib."""
