"""Station screens, one per module. Screens reach the backend only through `kiosk.client`."""
