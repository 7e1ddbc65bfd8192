"""Training: device choice, device-resident batches with batched augmentation, the loop."""
