"""pb: the platform's protobuf messages (package ``oprc``), generated from ``proto/`` by
``make proto`` with grpc_tools and committed; a test regenerates them and compares.  Never
edited by hand; imports nothing of ours."""
