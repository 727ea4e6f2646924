"""What Condor's data is: state, settings, the knowledge tree, task types and storage."""
