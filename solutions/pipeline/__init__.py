"""Pipeline parallelism (GPipe): a `torch.nn.Sequential` cut into stages that run
micro-batches tick by tick (`pipe`), on worker threads, one per stage (`worker`)."""
