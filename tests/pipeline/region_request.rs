//! Ports of client-go's request-path tests; see the module list in main.rs.
