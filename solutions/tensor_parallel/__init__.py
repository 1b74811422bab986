"""Tensor parallelism (Megatron-LM): an MLP whose weights are split over the ranks (`mlp`)."""
