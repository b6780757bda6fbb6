-- One database per service: each service owns its data (docker-compose.yml).
CREATE DATABASE atelier_billing;
CREATE DATABASE atelier_tasks;
CREATE DATABASE atelier_gateway;
