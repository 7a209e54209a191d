"""Serve: answer HTTP for what publish wrote, plus the website's few dynamic routes.

app.py is the ASGI app and `serve_forever`; prepared.py builds each file version's responses once;
fastlane.py answers GET/HEAD of published files straight from those bytes in front of uvicorn;
site.py is the dynamic side (/search, legacy links, 410 Gone).
"""
