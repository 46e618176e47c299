"""HubSpot: the gateway over the official client, the dry run, the properties, the rate budget, and the sink."""
