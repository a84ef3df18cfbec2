//! One integration binary: the gateway on port 0 in front of the strict emulator.
// std locks are banned in src/ (they poison); in a test a poisoned lock only fails the test.
#![allow(clippy::disallowed_types)]
// `pub` here is shared between the test modules of this one binary.
#![allow(unreachable_pub)]

mod adversarial;
mod api_keys;
mod callers;
mod concurrency;
mod connections;
mod console;
mod emulator_activities;
mod emulator_audit_logs;
mod emulator_enrichment;
mod emulator_feed_kinds;
mod emulator_reactions;
mod emulator_semantics;
mod emulator_verification;
mod endpoints;
mod helpers;
mod hygiene;
mod lifecycle;
mod listeners;
mod monitoring;
mod oidc;
mod operations;
mod realtime;
mod redis;
mod redis_server;
mod retries;
mod rotation;
mod services;
mod surface;
mod tokens;
mod tracing;
mod v2;
mod validation;
mod walkthrough;
mod webhooks;
