DROP TABLE history;
DROP TABLE notifications;
DROP TABLE findings;
DROP TABLE event_samples;
DROP TABLE events;
