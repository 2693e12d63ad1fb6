"""Model inputs: the feature/target builder protocol with contract checks, and the builders."""
