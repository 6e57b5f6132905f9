"""Record linkage: person records, the Splink model, match pairs and person clusters."""
