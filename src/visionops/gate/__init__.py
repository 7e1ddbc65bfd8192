"""register's gate: the chain of custody checked before anything is registered, the champion
scored on this run's test images, the paired test between the two, and the decision."""
