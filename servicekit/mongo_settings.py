"""How every service connects to MongoDB (``MONGODB_`` settings)."""

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class MongoSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MONGODB_")

    # A secret: a URI usually carries a password, so it is never printed or logged.
    uri: SecretStr = SecretStr("mongodb://127.0.0.1:27017/?directConnection=true")
    database: str = "incident_lessons"
