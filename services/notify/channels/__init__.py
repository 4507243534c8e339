"""Delivery channels: SMTP email and chat incoming webhooks. Each raises ``DeliveryError`` saying whether to retry."""
