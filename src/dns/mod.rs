//! DNS: wire parsing (hickory-proto), TCP stream reassembly, query/response
//! matching, search-list collapse into lookups, and the address → name table.
