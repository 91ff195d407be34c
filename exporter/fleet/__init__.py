"""Several identical carmetrics instances sharing the accounts through PostgreSQL leases
(``[shard] mode = "auto"``; docs/SCALING.md). Only ``settings`` is imported without sharding."""
