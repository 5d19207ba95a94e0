//! The black-box suite: the real `idledger` binary over HTTP against real PostgreSQL.

mod support;

mod skeleton;
