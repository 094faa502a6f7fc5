"""Beyond one machine: curation's per-video work (:mod:`.curation`) and bulk feature extraction
(:mod:`.features`) on a Ray cluster, and a real local cluster to try and test them on (:mod:`.local`).
Ray is imported only when a Ray engine runs."""
