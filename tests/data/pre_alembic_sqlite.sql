-- The schema Database.migrate() made before Alembic (create_all of the models, and
-- its schema_version table), dumped from that code on SQLite. Frozen: never edit.
CREATE TABLE schema_version (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	note VARCHAR(200) NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE journal_mark (
	name VARCHAR(40) NOT NULL, 
	seq BIGINT NOT NULL, 
	PRIMARY KEY (name)
);
CREATE TABLE hotline_calls (
	id INTEGER NOT NULL, 
	uniqueid VARCHAR(64), 
	caller VARCHAR(64), 
	hotline VARCHAR(64), 
	path TEXT NOT NULL, 
	destination VARCHAR(200), 
	outcome VARCHAR(20) NOT NULL, 
	started DATETIME NOT NULL, 
	answered DATETIME, 
	ended DATETIME, 
	PRIMARY KEY (id)
);
CREATE INDEX ix_hotline_calls_started ON hotline_calls (started);
CREATE INDEX ix_hotline_calls_uniqueid ON hotline_calls (uniqueid);
CREATE TABLE alarm_household (
	id INTEGER NOT NULL, 
	community VARCHAR(100) NOT NULL, 
	building VARCHAR(20) NOT NULL, 
	unit VARCHAR(20) NOT NULL, 
	room VARCHAR(20) NOT NULL, 
	residents VARCHAR(200) NOT NULL, 
	notes TEXT NOT NULL, 
	revision INTEGER NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE alarm_registry_version (
	id INTEGER NOT NULL, 
	version INTEGER NOT NULL, 
	changed_at DATETIME, 
	PRIMARY KEY (id)
);
CREATE TABLE alarm_household_number (
	id INTEGER NOT NULL, 
	household_id INTEGER NOT NULL, 
	number VARCHAR(20) NOT NULL, 
	position INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(household_id) REFERENCES alarm_household (id) ON DELETE CASCADE, 
	UNIQUE (number)
);
CREATE INDEX ix_alarm_household_number_household_id ON alarm_household_number (household_id);
CREATE TABLE alarm_neighbour (
	id INTEGER NOT NULL, 
	household_id INTEGER NOT NULL, 
	position INTEGER NOT NULL, 
	number VARCHAR(20) NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (household_id, position), 
	UNIQUE (household_id, number), 
	FOREIGN KEY(household_id) REFERENCES alarm_household (id) ON DELETE CASCADE
);
CREATE INDEX ix_alarm_neighbour_household_id ON alarm_neighbour (household_id);
CREATE TABLE alarm (
	id INTEGER NOT NULL, 
	household_id INTEGER, 
	caller_raw VARCHAR(80) NOT NULL, 
	caller_number VARCHAR(20), 
	address VARCHAR(300) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	opened_at DATETIME NOT NULL, 
	confirmed_at DATETIME, 
	closed_at DATETIME, 
	room VARCHAR(80) NOT NULL, 
	outcome VARCHAR(200) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(household_id) REFERENCES alarm_household (id) ON DELETE SET NULL
);
CREATE INDEX ix_alarm_open ON alarm (closed_at);
CREATE TABLE alarm_event (
	id INTEGER NOT NULL, 
	alarm_id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	kind VARCHAR(24) NOT NULL, 
	leg VARCHAR(80), 
	number VARCHAR(80), 
	detail VARCHAR(300) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(alarm_id) REFERENCES alarm (id) ON DELETE CASCADE
);
CREATE INDEX ix_alarm_event_alarm_id ON alarm_event (alarm_id);
