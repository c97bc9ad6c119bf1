# The botify service image (docker-compose.yml, service "recommender"); the same image runs the
# dataclient, the simulator and spark-submit clients.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contract contract
COPY service service
COPY sim sim
COPY dataclient dataclient
COPY jobs jobs
COPY analysis analysis
COPY infra infra
COPY pipeline pipeline
COPY settings settings
COPY sparkapp sparkapp
COPY conf conf
RUN pip install --no-cache-dir .
EXPOSE 5001
CMD ["python", "-m", "service", "--config", "conf/service.yml", "--host", "0.0.0.0"]
