"""The AutoTalk API client layer: configuration, transport, retries, errors, models, paging and
the contract. Nothing here imports Prefect, so the client can be used (and tested) on its own."""
