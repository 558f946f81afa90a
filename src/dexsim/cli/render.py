import click
@click.group() 
def render(): pass
