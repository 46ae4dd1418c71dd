//! Diesel's view of the tables in `migrations/`.

diesel::table! {
    events (id) {
        id -> BigInt,
        kind -> Text,
        status -> Text,
        notes -> Text,
        started_at_ms -> BigInt,
        ended_at_ms -> Nullable<BigInt>,
        peak_score -> Double,
        peak_tier -> Integer,
        stall_ms -> Nullable<Double>,
        culprits -> Binary,
        artefact_dir -> Text,
        artefact_bytes -> BigInt,
        attribution -> Nullable<Binary>,
    }
}

diesel::table! {
    event_samples (id) {
        id -> BigInt,
        event_id -> BigInt,
        reason -> Text,
        sequence -> BigInt,
        taken_at_ms -> BigInt,
        sample -> Binary,
    }
}

diesel::table! {
    findings (id) {
        id -> BigInt,
        event_id -> BigInt,
        step -> Text,
        outcome -> Text,
        summary -> Text,
        detail -> Text,
        elapsed_ms -> Double,
    }
}

diesel::table! {
    notifications (id) {
        id -> BigInt,
        event_id -> Nullable<BigInt>,
        sent_at_ms -> BigInt,
        title -> Text,
        body -> Text,
        delivered -> Bool,
        error -> Text,
    }
}

diesel::table! {
    history (taken_at_ms) {
        taken_at_ms -> BigInt,
        tier -> Integer,
        max_score -> Double,
        process_count -> Integer,
        row -> Binary,
    }
}

diesel::joinable!(event_samples -> events (event_id));
diesel::joinable!(findings -> events (event_id));
diesel::joinable!(notifications -> events (event_id));
diesel::allow_tables_to_appear_in_same_query!(events, event_samples, findings, notifications, history);
